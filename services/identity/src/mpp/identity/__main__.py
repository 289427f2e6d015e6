"""``python -m mpp.identity`` runs the identity service."""

from mpp.identity.app import create_app
from mpp.identity.config import IdentitySettings
from mpp.kit.serve import main

if __name__ == "__main__":
    main("identity", IdentitySettings, create_app)
