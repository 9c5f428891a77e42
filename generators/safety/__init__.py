"""The image classifier that judges every result before it is posted.

Light on purpose: the bot side imports :mod:`generators.safety.config` and :mod:`generators.safety.verdict`
(settings, status lines, the decision over detections) without onnxruntime. The detector itself,
:mod:`generators.safety.detector`, is loaded only by :func:`generators.safety.classifier.load_classifier`
in the process that renders results.
"""
