"""3D side of the toolkit: scenes and cameras (numpy only), and, on open3d (``pip install
"artifacts-toolkit[3d]"``, imported lazily), meshes and point clouds, headless rendering,
point-cloud and Gaussian-splat cleanup, TSDF fusion."""
