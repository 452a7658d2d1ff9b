"""Latency on the deployment target: lookup tables of measured parts, and the predictor built on them.

``nas latency build SPACE`` times, on this machine and runtime, every distinct part the space's
architectures are made of (:mod:`nas.latency.parts`) and calibrates their sum on whole networks
(:mod:`nas.latency.build`); ``nas latency check TABLE`` compares its predictions with whole networks timed
the same way (:mod:`nas.latency.check`). A search scores latency from the table
(:class:`~nas.latency.table.LatencyTable`), wherever its trials run, for the device the table was built on.

:mod:`nas.latency.parts` and :mod:`nas.latency.table` import no torch; timing does.
"""
