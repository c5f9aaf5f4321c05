"""What the tests and the benchmarks share to drive the real system: the model host on a free port,
the built web app, the system Chromium's flags and fixed test images. Imports nothing of the parts."""
