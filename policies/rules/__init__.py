"""The modelplane platform's policy rules: plain checks over resources as the Pulumi engine presents them."""
