"""The students: small query encoders that live in the teacher's embedding space.

``static`` (a distilled token table) and ``truncated`` (the first layers of a transformer) are the two kinds;
``heads`` maps either into the teacher's space; ``meta`` is a student folder's record; ``numpy_encoder`` runs a
static student without torch in the service. A static table's parts:
``vocabulary`` (the shop's words), ``shop_tokens`` (only the tokens the shop uses), ``phrases``, ``word_starts``,
``lowercase``, and ``table_rows`` (which rows a batch trains). Building one from a config is
``harnesslm.distill.build_student``; a run keeps its students through ``harnesslm.run.student_store``.
"""
