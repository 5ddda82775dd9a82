"""Speech side of ebtk: audio I/O and mels, vocoder, text front-end, corpora and datasets.

Kept import-light: import the submodules (`ebtk.tts.audio`, `ebtk.tts.vocoder`, ...) where needed, so that
`import ebtk.tts` costs nothing when only the EBM studies are used.
"""
