"""`python -m bench`: side-by-side speed and size of Lumen's engines and their peers (issue #7)."""
