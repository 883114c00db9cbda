"""The parts of bench/search_efficiency.py: the recorded landscape (``table``), the searchers
(``searchers``), one replay (``game``) and the summary (``summary``)."""
