"""The output folder: its one owner, grades.csv, the gradebook."""
