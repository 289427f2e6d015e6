"""Licensing service (DPMPTSP): permit applications, approvals and permits."""
