"""The pages people read: the report, its charts, highlighted code and sanitised markdown."""
