"""Taking a request in: the rules every identifier must follow, the officer's form, and (dev mode)
the simulator's sample IDs."""
