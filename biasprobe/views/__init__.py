"""Views: how results are shown on the terminal (:mod:`biasprobe.views.terminal`)."""
