"""KFP pipelines composed from ``components/``."""
