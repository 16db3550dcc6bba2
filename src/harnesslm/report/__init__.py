"""What a run tells its reader, read from its JSON files alone (no model is loaded): the Markdown report
(``markdown``), the HTML report with its charts (``html``) and a student's model card (``model_card``)."""
