"""Weight sharing: one supernet over a whole YAML space, trained once, from which any architecture is
taken and measured in a fraction of a second (``nas search --evaluator supernet``)."""
