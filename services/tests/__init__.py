"""Unit tests, laid out like the package: services/tests/<package>/ tests labelstream/<package>;
the files at this level test the whole tree (collection ownership, the Helm chart, its alert rules)."""
