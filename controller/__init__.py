"""smelter-ems controller: config, wire contract, scheduler, safety, I/O and the command line."""
