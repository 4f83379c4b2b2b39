"""Browser tests of the console and the portal. A package, so that the platform fixture of conftest.py
(scope "package") is stopped after the last browser test rather than at the end of the whole session."""
