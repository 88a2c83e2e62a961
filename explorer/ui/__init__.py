"""The Streamlit pages of Router Explorer (one module per page) and what they share: state, colours, figures.

Each page module defines `render()` and runs it when Streamlit executes the file as a page (`st.Page(path)`).
"""
