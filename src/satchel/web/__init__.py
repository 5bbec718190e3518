"""Web adapters: one request choreography (:mod:`.lifecycle`) and a thin module per framework."""
