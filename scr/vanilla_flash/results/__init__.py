"""Results: where they come from and the one way they are written (`provenance`), their figures
(`plots`), and the plots and tables drawn from results files (`report`, `tables`)."""
