"""Built-in scenario files (TOML); copy one to make your own."""
