"""Settings: a flat mapping (an INI file's strings) in, frozen config objects out."""
