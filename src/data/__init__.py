"""Data: image sets read as sequences, series of any length, your own arrays, the UCR/UEA archive."""
