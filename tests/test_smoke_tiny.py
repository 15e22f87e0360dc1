def test_tiny_model_loads_and_encodes(tiny_model_path):
    from anirec.models import load_model

    m = load_model(str(tiny_model_path), max_seq_length=64)
    v = m.encode(["a test sentence", "another one"], normalize_embeddings=True)
    assert v.shape == (2, 32)
