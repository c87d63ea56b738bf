"""Reports as pictures: the charts (`chart`), the HTML page (`page`), the bot's glue
(`making`) and the weekly post (`weekly`)."""
