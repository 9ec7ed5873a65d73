"""Results: where they come from (`provenance`), their figures (`plots`), and the plots and tables
drawn from results files (`report`, `tables`)."""
