"""The web inbox and its JSON API (`countersign serve`): Starlette on uvicorn.

`countersign.web.app.serve` puts it together from a bootstrap runtime and a projections store;
the modules hold one concern each: who is calling (`auth`, `oidc`, `sessions`, `users`),
what a decision may be (`decisions`, `forms`), how it is signed (`signing`), what the pages
hear (`live`), and the routes (`api`, `pages`). Importing this package loads nothing else.
"""
