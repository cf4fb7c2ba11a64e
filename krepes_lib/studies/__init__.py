"""The studies: one module per paper experiment, used by the notebooks (not by the core).

The core library (everything in ``krepes_lib`` outside this package and ``cli``) is what a
user imports to audit their own data or network; it never imports a study. The studies sit
one floor up and turn the core into the paper's experiments:

* :mod:`.v1` — kernel models trained with each loss, and the v1 ablations (optimiser,
  initialisation, landmarks, Nyström error): notebooks 01–05;
* :mod:`.audits` — the v3 audit metrics on an RBF kernel (influence gallery, κ,
  Precision@1, confidence drop, spectral entropy, Alignment Gap): notebooks 06–09;
* :mod:`.neuralef` — NeuralEF vs Nyström (PyTorch), a subpackage split by concern: notebook 10;
* :mod:`.stepwise` — stepwise learning of eigenmodes: notebook 11;
* :mod:`.kpca_gradient` — kernel PCA by gradient and its robust variant: notebook 12;
* :mod:`.scaling` — runtime vs n and the choice of m: notebook 13;
* :mod:`.v3` — v3 and v1 on the networks' own eNTK (PyTorch): notebooks 14–16;
* :mod:`.results` — the one results table (:class:`~krepes_lib.studies.results.Table`), the
  results the notebooks save and the paper's numbers they are compared with (read by the
  report of ``krepes reproduce``).

A study computes and builds :class:`krepes_lib.claims.Claim` objects; it decides nothing — the
notebook names the rule and the claims engine (:mod:`krepes_lib.claims`) decides. Models are
built by the one recipe (:func:`krepes_lib.build_model`), audits run through
:func:`krepes_lib.studies.audits.run_audit`, times are taken by :class:`krepes_lib.timing.Timer`.

Import a study by name (``from krepes_lib.studies import v3``); this package imports none
of them eagerly, so the PyTorch ones cost nothing until used.
"""
