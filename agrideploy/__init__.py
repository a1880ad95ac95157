"""agrideploy: from a trained agricultural vision checkpoint to a measured, deployed engine."""

__version__ = "0.1.0"
