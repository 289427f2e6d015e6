"""Identity (civil registry) service of the MPP platform: citizens, documents, NIK verification."""
