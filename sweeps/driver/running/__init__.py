"""Running a sweep: run, resume and sync, Ray Tune's wiring, signals, and closing the sweep's record
however it ends."""
