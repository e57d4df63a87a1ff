"""George runs an organisation's slow manual processes as jobs, with people approving in Slack."""

__version__ = "0.1.0"
