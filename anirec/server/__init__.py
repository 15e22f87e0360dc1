"""`anirec serve`: a fitted recommender over HTTP (:mod:`.app`) with a web page (``static/``)."""
