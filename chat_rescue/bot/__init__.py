"""The functional core: model, engine, service, ticker, settings and commands."""
