from django.db import models


class Upload(models.Model):
    title = models.CharField(max_length=200)
    file = models.FileField(upload_to="uploads/%Y/%m/")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created"]

    def __str__(self):
        return self.title
