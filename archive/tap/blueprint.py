"""The TAP blueprint object; the view modules attach their routes to it."""
from flask import Blueprint

bp = Blueprint("tap", __name__, url_prefix="/tap")
