"""The OpenAI-compatible API: every preset as a model, for Open WebUI, LibreChat, Continue and the OpenAI SDKs.

app.py     the adapter: routes under /v1, bearer keys, errors in OpenAI's shape, request -> question
schema.py  the request read and checked (pure), the response bodies (`moa` object included)
sink.py    one completion: a JSON body at the end, or server-sent events as the answer is written
errors.py  OpenAI's error shape; the core's refusals and failures mapped to HTTP statuses in one place
keys.py    the keys, kept as digests and compared in constant time

Nothing is imported here: the settings read `keys` without loading the web server.
"""
