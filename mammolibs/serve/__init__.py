"""``mammo serve``: a web page and an HTTP API (also Vertex AI's custom-container contract) over the
deployed chain; :mod:`.inputs` checks what requests carry, :mod:`.app` answers them."""
