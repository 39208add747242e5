"""The catalog: programs (with their offer and reward rules) and advocates, the nouns every
other floor refers to. It sits below ``attribution`` (import-linter's layers), so attribution and
advocacy read and change them through these functions rather than reaching up a floor."""
