"""The local web page (`superres serve`): a Starlette app, its job queue and its static page."""
