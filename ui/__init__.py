"""The local web page (Gradio) on top of the shared search function.

Gradio's usage analytics and version check are turned off before Gradio is imported: the
page must work offline and send nothing anywhere.
"""

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
