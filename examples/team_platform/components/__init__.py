"""The team's own components: a package named `components` beside modelplane's never clashes with it."""
