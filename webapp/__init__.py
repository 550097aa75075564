"""The web app's parts that need no app object: input checks and pictures."""
