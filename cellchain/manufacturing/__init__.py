"""Manufacturing: product definitions now; processing steps, materials and storage next."""
