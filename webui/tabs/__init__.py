"""One module per tab; each exposes ``build(ctx: webui.context.UIContext) -> None``, called inside ``gr.Tab``."""
