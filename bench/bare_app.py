"""The yardstick: a bare Flask JSON route under the same gunicorn settings."""

from flask import Flask, jsonify, request

app = Flask(__name__)


@app.get("/bare")
def bare():  # type: ignore[no-untyped-def]
    return jsonify(visitor=request.args.get("visitor"), ok=True)
