"""``python -m services.simulator --flavor openai --port 8001``"""

import argparse
import sys

from services.simulator.main import add_arguments, main

parser = argparse.ArgumentParser(prog="python -m services.simulator",
                                 description="Fake Ollama / OpenAI LLM backend")
add_arguments(parser)
sys.exit(main(parser.parse_args()))
