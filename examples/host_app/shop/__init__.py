"""A small host application that embeds tgpersist: customers, and the Telegram bots they registered."""
