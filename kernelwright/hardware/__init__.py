"""Device profiles (peak rates and bandwidth) and backend adapters."""
