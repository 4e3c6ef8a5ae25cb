"""The package's version, on the ground floor: the client's User-Agent, the server's name card and the CLI
read it here, so nothing inside the package imports the package face (flora_mcp/__init__.py) for it.
pyproject.toml, server.json and the bundle manifest carry the same number (tests/test_packaging.py)."""

__version__ = "0.1.0"
