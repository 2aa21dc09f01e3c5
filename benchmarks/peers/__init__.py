"""Other tools measured against ffsr in the same benchmark run (issue 9: vs-mlrt, and
ONNX Runtime / OpenVINO alone). The peers run in their own Python (peer_env.py makes it);
worker.py and upscale.vpy are their side, vsmlrt.py measures, report.py writes the section."""
