"""One training engine for the four stages; each stage only says model, data view and loss."""
