"""`zsmie serve`: a trained model over HTTP (app.py, server.py) with its request batcher
(batcher.py). File prediction (`zsmie predict`) is zsmie.inference.batch."""
