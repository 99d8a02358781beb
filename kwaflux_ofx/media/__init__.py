"""Media in and out: timecode, probing, decoding, encoding, codecs and still images."""
