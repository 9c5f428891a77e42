"""The bot side: settings, the job store and service, adapters and the command line."""
